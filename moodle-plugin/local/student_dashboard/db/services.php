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

/**
 * Web-service functions and the zmsync service (docs/plugin-contract.md in the zmsync repository).
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$functions = [
    'local_student_dashboard_get_info' => [
        'classname' => 'local_student_dashboard\external\get_info',
        'description' => 'Return the plugin version and the web-service contract version.',
        'type' => 'read',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_upsert_registrations' => [
        'classname' => 'local_student_dashboard\external\upsert_registrations',
        'description' => 'Create or update registrations, keyed by Zoho id.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_upsert_payments' => [
        'classname' => 'local_student_dashboard\external\upsert_payments',
        'description' => 'Create or update payments, keyed by Zoho id.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_upsert_units' => [
        'classname' => 'local_student_dashboard\external\upsert_units',
        'description' => 'Create or update BTEC units (grading definitions), keyed by Zoho id.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_upsert_grades' => [
        'classname' => 'local_student_dashboard\external\upsert_grades',
        'description' => 'Create or update BTEC grades, keyed by Zoho id.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_delete_registrations' => [
        'classname' => 'local_student_dashboard\external\delete_registrations',
        'description' => 'Delete registrations by Zoho id; unknown ids are ignored.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_delete_payments' => [
        'classname' => 'local_student_dashboard\external\delete_payments',
        'description' => 'Delete payments by Zoho id; unknown ids are ignored.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_delete_units' => [
        'classname' => 'local_student_dashboard\external\delete_units',
        'description' => 'Delete BTEC units by Zoho id; unknown ids are ignored.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_delete_grades' => [
        'classname' => 'local_student_dashboard\external\delete_grades',
        'description' => 'Delete BTEC grades by Zoho id; unknown ids are ignored.',
        'type' => 'write',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_get_registrations' => [
        'classname' => 'local_student_dashboard\external\get_registrations',
        'description' => 'List registrations, ordered by id, one page at a time.',
        'type' => 'read',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_get_payments' => [
        'classname' => 'local_student_dashboard\external\get_payments',
        'description' => 'List payments, ordered by id, one page at a time.',
        'type' => 'read',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_get_units' => [
        'classname' => 'local_student_dashboard\external\get_units',
        'description' => 'List BTEC units, ordered by id, one page at a time.',
        'type' => 'read',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_get_grades' => [
        'classname' => 'local_student_dashboard\external\get_grades',
        'description' => 'List BTEC grades, ordered by id, one page at a time.',
        'type' => 'read',
        'capabilities' => 'local/student_dashboard:manage',
    ],
    'local_student_dashboard_get_course_grades' => [
        'classname' => 'local_student_dashboard\external\get_course_grades',
        'description' => 'Return the course-total grades of the given courses, regrading first if needed.',
        'type' => 'read',
        'capabilities' => 'local/student_dashboard:manage, moodle/grade:viewall',
    ],
    'local_student_dashboard_get_enrolments' => [
        'classname' => 'local_student_dashboard\external\get_enrolments',
        'description' => 'Return the manual enrolments (status, dates, roles) of the given courses.',
        'type' => 'read',
        'capabilities' => 'local/student_dashboard:manage, moodle/course:enrolreview',
    ],
];

$services = [
    'zmsync (Zoho CRM sync)' => [
        'functions' => [
            'local_student_dashboard_get_info',
            'local_student_dashboard_upsert_registrations',
            'local_student_dashboard_upsert_payments',
            'local_student_dashboard_upsert_units',
            'local_student_dashboard_upsert_grades',
            'local_student_dashboard_delete_registrations',
            'local_student_dashboard_delete_payments',
            'local_student_dashboard_delete_units',
            'local_student_dashboard_delete_grades',
            'local_student_dashboard_get_registrations',
            'local_student_dashboard_get_payments',
            'local_student_dashboard_get_units',
            'local_student_dashboard_get_grades',
            'local_student_dashboard_get_course_grades',
            'local_student_dashboard_get_enrolments',
            'core_webservice_get_site_info',
            'core_user_get_users',
            'core_user_get_users_by_field',
            'core_user_create_users',
            'core_user_update_users',
            'core_user_delete_users',
            'core_course_get_courses',
            'core_course_get_courses_by_field',
            'core_course_create_courses',
            'core_course_update_courses',
            'core_course_get_categories',
            'core_course_create_categories',
            'enrol_manual_enrol_users',
            'enrol_manual_unenrol_users',
            'core_enrol_get_enrolled_users',
            'gradereport_user_get_grade_items',
        ],
        'shortname' => 'zmsync',
        'enabled' => 0,
        'restrictedusers' => 1,
        'downloadfiles' => 0,
        'uploadfiles' => 0,
    ],
];
