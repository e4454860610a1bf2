<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\external;

use core_external\external_value;
use local_student_dashboard\local\row_types;

/**
 * Shared pieces of the web-service descriptions: PARAM types of the row fields, the batch limit.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class structures {

    /**
     * The PARAM type a field kind is sent with (docs/plugin-contract.md, section 1.1).
     *
     * @param string $kind A row_types::KIND_ constant.
     * @return string A PARAM_ constant.
     */
    public static function param_type(string $kind): string {
        $types = [
            row_types::KIND_ZOHOID => PARAM_ALPHANUMEXT,
            row_types::KIND_USERID => PARAM_INT,
            row_types::KIND_DATE => PARAM_ALPHANUMEXT,
            row_types::KIND_MONEY => PARAM_RAW_TRIMMED,
            row_types::KIND_PERCENT => PARAM_RAW_TRIMMED,
            row_types::KIND_CURRENCY => PARAM_ALPHA,
            row_types::KIND_TEXT => PARAM_TEXT,
            row_types::KIND_ENUM => PARAM_ALPHA,
            row_types::KIND_INT => PARAM_INT,
            row_types::KIND_FLOAT => PARAM_FLOAT,
        ];
        return $types[$kind];
    }

    /**
     * The description of a field in a request.
     *
     * @param array $field The field (row_types::fields()).
     * @param string $name Its wire name.
     * @return external_value
     */
    public static function input_value(array $field, string $name): external_value {
        $type = self::param_type($field['kind']);
        if ($field['required']) {
            return new external_value($type, $name, VALUE_REQUIRED);
        }
        if ($field['default'] === null) {
            return new external_value($type, $name, VALUE_OPTIONAL);
        }
        return new external_value($type, $name, VALUE_DEFAULT, $field['default']);
    }

    /**
     * The description of a field in a response; "not set" is null.
     *
     * @param array $field The field (row_types::fields()).
     * @param string $name Its wire name.
     * @return external_value
     */
    public static function output_value(array $field, string $name): external_value {
        $type = self::param_type($field['kind']);
        if ($field['kind'] === row_types::KIND_MONEY || $field['kind'] === row_types::KIND_PERCENT) {
            $type = PARAM_RAW;
        }
        return new external_value($type, $name, VALUE_REQUIRED, null, NULL_ALLOWED);
    }

    /**
     * Refuse a call that carries more than the batch limit.
     *
     * @param int $count Rows, ids or course ids in the call.
     * @throws \moodle_exception batchtoolarge
     */
    public static function require_batch_size(int $count): void {
        if ($count > row_types::MAX_BATCH) {
            throw new \moodle_exception('batchtoolarge', 'local_student_dashboard', '',
                (object) ['count' => $count, 'max' => row_types::MAX_BATCH]);
        }
    }
}
