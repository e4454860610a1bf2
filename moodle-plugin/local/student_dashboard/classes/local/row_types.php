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

namespace local_student_dashboard\local;

/**
 * The four kinds of rows the sync writes, as described in docs/plugin-contract.md (section 3).
 *
 * For each row type: the plugin table, the warning item name and the fields. A field has a wire name
 * (as in the web services), a database column, a kind (how it is validated and normalised), whether it is
 * required, its default and, for text, its maximum length. This class has no Moodle dependency.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class row_types {

    /** @var string Kind: a Zoho record id. */
    public const KIND_ZOHOID = 'zohoid';

    /** @var string Kind: a Moodle user id. */
    public const KIND_USERID = 'userid';

    /** @var string Kind: a calendar date YYYY-MM-DD. */
    public const KIND_DATE = 'date';

    /** @var string Kind: a money amount, decimal with at most two places. */
    public const KIND_MONEY = 'money';

    /** @var string Kind: a percentage 0-100, at most two places. */
    public const KIND_PERCENT = 'percent';

    /** @var string Kind: an ISO 4217 currency code. */
    public const KIND_CURRENCY = 'currency';

    /** @var string Kind: plain text. */
    public const KIND_TEXT = 'text';

    /** @var string Kind: one value of a fixed list. */
    public const KIND_ENUM = 'enum';

    /** @var string Kind: an integer. */
    public const KIND_INT = 'int';

    /** @var string Kind: a number. */
    public const KIND_FLOAT = 'float';

    /** @var int The most rows (or ids, or course ids) one call may carry. */
    public const MAX_BATCH = 500;

    /** @var int The largest page get_* returns. */
    public const MAX_PAGE = 5000;

    /** @var int The contract version (docs/plugin-contract.md). */
    public const CONTRACT_VERSION = 1;

    /**
     * The row types.
     *
     * @return string[]
     */
    public static function types(): array {
        return ['registrations', 'payments', 'units', 'grades'];
    }

    /**
     * The plugin table of a row type.
     *
     * @param string $type A row type.
     * @return string The table name without prefix.
     */
    public static function table(string $type): string {
        $tables = [
            'registrations' => 'local_student_dashboard_reg',
            'payments' => 'local_student_dashboard_pay',
            'units' => 'local_student_dashboard_unit',
            'grades' => 'local_student_dashboard_grade',
        ];
        if (!isset($tables[$type])) {
            throw new \InvalidArgumentException('Unknown row type: ' . $type);
        }
        return $tables[$type];
    }

    /**
     * The singular item name of a row type.
     *
     * @param string $type A row type.
     * @return string For example "registration".
     */
    public static function item(string $type): string {
        self::table($type);
        return substr($type, 0, -1);
    }

    /**
     * Whether rows of this type belong to a user.
     *
     * @param string $type A row type.
     * @return bool
     */
    public static function has_user(string $type): bool {
        return isset(self::fields($type)['userid']);
    }

    /**
     * The fields of a row type, keyed by wire name, in contract order.
     *
     * @param string $type A row type.
     * @return array[] Each with column, kind, required, default and, where it applies, length or values.
     */
    public static function fields(string $type): array {
        switch ($type) {
            case 'registrations':
                $fields = [
                    'zoho_id' => self::field(self::KIND_ZOHOID),
                    'userid' => self::field(self::KIND_USERID),
                    'student_zoho_id' => self::field(self::KIND_ZOHOID),
                    'program' => self::field(self::KIND_TEXT, true, null, ['length' => 255]),
                    'registration_date' => self::field(self::KIND_DATE, false, ''),
                    'total_fee' => self::field(self::KIND_MONEY),
                    'scholarship_percent' => self::field(self::KIND_PERCENT, false, '0'),
                    'currency' => self::field(self::KIND_CURRENCY),
                    'status' => self::field(self::KIND_TEXT, false, '', ['length' => 50]),
                ];
                break;
            case 'payments':
                $fields = [
                    'zoho_id' => self::field(self::KIND_ZOHOID),
                    'userid' => self::field(self::KIND_USERID),
                    'student_zoho_id' => self::field(self::KIND_ZOHOID),
                    'registration_zoho_id' => self::field(self::KIND_ZOHOID, false, ''),
                    'amount' => self::field(self::KIND_MONEY),
                    'payment_date' => self::field(self::KIND_DATE, false, ''),
                    'due_date' => self::field(self::KIND_DATE, false, ''),
                    'status' => self::field(self::KIND_ENUM, true, null, [
                        'values' => ['Paid', 'Due', 'Overdue'],
                        'warning' => 'invalidstatus',
                    ]),
                    'method' => self::field(self::KIND_TEXT, false, '', ['length' => 50, 'column' => 'paymentmethod']),
                ];
                break;
            case 'units':
                $fields = [
                    'zoho_id' => self::field(self::KIND_ZOHOID),
                    'unit_code' => self::field(self::KIND_TEXT, true, null, ['length' => 50]),
                    'unit_name' => self::field(self::KIND_TEXT, true, null, ['length' => 255]),
                    'level' => self::field(self::KIND_TEXT, false, '', ['length' => 50, 'column' => 'unitlevel']),
                    'credits' => self::field(self::KIND_INT, false, 0, ['min' => 0, 'max' => 999]),
                    'criteria' => self::field(self::KIND_TEXT, false, '', ['length' => 65535, 'bytes' => true]),
                ];
                break;
            case 'grades':
                $fields = [
                    'zoho_id' => self::field(self::KIND_ZOHOID),
                    'userid' => self::field(self::KIND_USERID),
                    'student_zoho_id' => self::field(self::KIND_ZOHOID),
                    'unit_zoho_id' => self::field(self::KIND_ZOHOID, false, ''),
                    'class_zoho_id' => self::field(self::KIND_ZOHOID, false, ''),
                    'grade' => self::field(self::KIND_ENUM, true, null, [
                        'values' => grade_converter::levels(),
                        'warning' => 'invalidgrade',
                    ]),
                    'moodle_grade' => self::field(self::KIND_FLOAT, false),
                    'graded_date' => self::field(self::KIND_DATE, false, ''),
                ];
                break;
            default:
                throw new \InvalidArgumentException('Unknown row type: ' . $type);
        }
        foreach ($fields as $name => $field) {
            if (!isset($field['column'])) {
                $fields[$name]['column'] = str_replace('_', '', $name);
            }
        }
        return $fields;
    }

    /**
     * Build one field description.
     *
     * @param string $kind One of the KIND_ constants.
     * @param bool $required Whether the key must be sent.
     * @param mixed $default The default when an optional key is omitted (null: the key stays absent).
     * @param array $extra Extra properties: length, bytes, values, warning, min, max, column.
     * @return array
     */
    private static function field(string $kind, bool $required = true, $default = null, array $extra = []): array {
        return ['kind' => $kind, 'required' => $required, 'default' => $default] + $extra;
    }
}
