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

use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_single_structure;
use core_external\external_value;
use local_student_dashboard\local\row_types;

/**
 * Web service local_student_dashboard_get_info: the plugin and contract versions the sync checks.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_info extends external_api {

    /**
     * No parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([]);
    }

    /**
     * Return the versions.
     *
     * @return array See execute_returns().
     */
    public static function execute(): array {
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/student_dashboard:manage', $context);

        global $CFG, $DB;
        $plugin = \core_plugin_manager::instance()->get_plugin_info('local_student_dashboard');
        if (!empty($CFG->noemailever)) {
            $mail = 'disabled';
        } else {
            $mail = empty($CFG->smtphosts) ? 'php' : 'smtp';
        }
        return [
            'component' => 'local_student_dashboard',
            'version' => (int) $plugin->versiondisk,
            'release' => (string) $plugin->release,
            'contract_version' => row_types::CONTRACT_VERSION,
            // Site settings the sync's doctor checks (optional: added after 1.0, older clients ignore them).
            'identity_fields' => (string) ($CFG->showuseridentity ?? ''),
            'mail' => $mail,
            'welcome_default' => !empty(get_config('enrol_manual', 'sendcoursewelcomemessage')),
            'welcome_courses' => $DB->count_records_select('enrol', "enrol = 'manual' AND customint1 <> 0"),
        ];
    }

    /**
     * Returns: component, version, release and contract version, and the site settings the sync's doctor checks.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'component' => new external_value(PARAM_COMPONENT, 'Always local_student_dashboard'),
            'version' => new external_value(PARAM_INT, 'Plugin version (version.php)'),
            'release' => new external_value(PARAM_TEXT, 'Plugin release'),
            'contract_version' => new external_value(PARAM_INT, 'Web-service contract version'),
            'identity_fields' => new external_value(PARAM_RAW, 'Show user identity ($CFG->showuseridentity)',
                VALUE_OPTIONAL),
            'mail' => new external_value(PARAM_ALPHA, 'How mail is sent: smtp, php (no SMTP host) or disabled',
                VALUE_OPTIONAL),
            'welcome_default' => new external_value(PARAM_BOOL,
                'New manual enrolment methods send the course welcome message', VALUE_OPTIONAL),
            'welcome_courses' => new external_value(PARAM_INT,
                'Manual enrolment methods that send the course welcome message', VALUE_OPTIONAL),
        ]);
    }
}
